{ pkgs, ... }: { environment.systemPackages = [ pkgs.hello pkgs.world ]; }
