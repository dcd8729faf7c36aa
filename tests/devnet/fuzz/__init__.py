"""Seeded fuzzing of the local network's routes: raw HTTP, mutations, targets, checks."""
