import ../pkgs.nix 1
