"""bnnc runtime: JIT/AOT loading, input checking, framework integration."""
