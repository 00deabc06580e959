"""bnnc passes: one pass per file, the file named after the flag."""
