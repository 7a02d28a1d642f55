"""Applying plans: the engine that runs them step by step, its journal and lock, disk
measurement, and the builders (a profile, a NixOS system) with their shipped `.nix` files."""
