"""Package names for generated systems, so that generated plans read like real ones."""

LIBRARIES = (
    "glibc zlib openssl ncurses readline libffi xz bzip2 zstd libxml2 expat sqlite pcre2 "
    "libidn2 libunistring gmp mpfr libcap acl attr util-linux-lib systemd-lib dbus-lib "
    "libseccomp libgcrypt libgpg-error p11-kit gnutls nettle libtasn1 krb5 keyutils "
    "libssh2 nghttp2 curl-lib brotli icu libuv c-ares libevent libedit gdbm db "
    "libxcrypt libsodium lz4 elfutils libbpf kmod-lib cryptsetup-lib lvm2-lib json-c "
    "libarchive libjpeg-turbo libpng freetype fontconfig harfbuzz glib cairo pango "
    "pixman libtiff libwebp giflib lcms2 libdrm mesa-lib wayland libX11 libxcb libXext "
    "libXrender libXft python3-lib perl-lib tcl libmnl libnftnl iptables-lib pam "
    "audit-lib linux-headers libusb1 libpcap protobuf abseil-cpp boost llvm-lib"
).split()

PACKAGES = (
    "linux initrd-linux linux-firmware systemd coreutils bash util-linux openssh nix git "
    "curl wget vim neovim tmux htop python3 perl nodejs go rustc gcc binutils gnumake "
    "cmake pkg-config gnused gnugrep gawk findutils diffutils gnutar gzip unzip zip "
    "rsync sudo shadow iproute2 iptables nftables dhcpcd wpa_supplicant networkmanager "
    "dbus polkit udisks2 lvm2 cryptsetup e2fsprogs btrfs-progs dosfstools mdadm "
    "grub2 systemd-boot kmod man-db texinfo less file which procps psmisc strace gdb "
    "lsof tree jq ripgrep fd bat zsh fish direnv nix-direnv home-manager docker podman "
    "containerd runc caddy nginx postgresql redis mariadb prometheus grafana "
    "node-exporter loki promtail fail2ban restic borgbackup rclone tailscale wireguard-tools "
    "unbound bind dnsmasq chrony ntp openldap sssd samba nfs-utils cifs-utils fuse "
    "sshfs gnupg pass age sops bitwarden-cli firefox chromium thunderbird libreoffice "
    "gimp inkscape vlc mpv ffmpeg imagemagick ghostscript texlive pandoc emacs vscode "
    "ghc cabal-install stack llvm clang lldb jdk maven gradle sbt scala kotlin ruby "
    "php erlang elixir julia R octave sage qemu libvirt virt-manager"
).split()
