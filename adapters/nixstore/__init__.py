"""Reading the world: the process gate, one function per nix verb, the pure format
parsers, closure sources, and the sizing of targets that are not built."""
