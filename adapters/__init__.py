"""Everything that touches the world: Nix stores and files, the command line."""
