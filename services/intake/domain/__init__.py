"""Intake's pure rules (no I/O): what may be done to a petition, by whom, and when."""
