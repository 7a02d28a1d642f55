{ pkgs, ... }: { environment.systemPackages = [ pkgs.hello pkgs.world pkgs.tools pkgs.editor ]; }
