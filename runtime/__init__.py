"""bnnc runtime: what a compiled model needs to run (the ABI and signature,
loading an artifact, checking inputs, calling it). Imports no pass, driver or
frontend."""
