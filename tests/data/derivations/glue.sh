# The top-level of tests/data/derivations/target.nix: links to what it is made of.
PATH=/usr/bin:/bin
mkdir "$out"
ln -s "$app" "$out/sw"
ln -s "$etc" "$out/etc"
ln -s "$blob" "$out/blob.bin"
