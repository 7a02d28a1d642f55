"""What-if studies: targets made from the current closure (`scenario.py`), read from
`nix store diff-closures` output (`diffclosures.py`), and the store a system needs for an
upgrade in at most k steps (`capacity.py`)."""
