import ../../nixos.nix ../.
