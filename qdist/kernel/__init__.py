"""Pure kernel maths: feature maps, the batched state engine, tile formulas and diagnostics.

Only numpy, scipy's BLAS wrappers and ``qiskit.circuit`` are imported here.
"""
