"""Pure kernel maths: feature maps, tile formulas and diagnostics (numpy and qiskit.circuit only)."""
