import ../pkgs.nix 2
