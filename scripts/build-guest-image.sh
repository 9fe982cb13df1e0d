#!/usr/bin/env bash
# Builds the Debian 12 guest the Proxmox simulator boots in real-guest mode (issue 26, part 4): a qcow2 disk made
# from Debian's own packages with mmdebstrap, its kernel and initrd beside it (QEMU boots with -kernel/-initrd), and
# the NetBird client placed as its installer would place it (/usr/bin/netbird, an enabled unit running
# `netbird service run`) when scripts/install-netbird.sh has built it.
#
# Cached under .tools/guest-image/<recipe hash>/: the hash covers this script, the package list and the NetBird
# client's bytes, so the image is rebuilt only when one of them changes. The last line on stdout is that directory.
# Needs root (mmdebstrap into a directory), mmdebstrap, mkfs.ext4 and qemu-img; reaches only the Debian mirror.
set -euo pipefail
cd "$(dirname "$0")/.."

suite=bookworm
mirror=${GUEST_IMAGE_MIRROR:-http://deb.debian.org/debian}
disk_size=3G
# locales: without it cloud-init's locale module fails and the whole run ends `error`.
packages=(locales systemd-sysv udev dbus linux-image-cloud-amd64 initramfs-tools cloud-init qemu-guest-agent openssh-server
  ifupdown isc-dhcp-client iproute2 netbase sudo curl ca-certificates e2fsprogs kmod procps)
netbird_client=.tools/netbird/bin/netbird

for tool in mmdebstrap mkfs.ext4 qemu-img sha256sum; do
  command -v "$tool" >/dev/null || { echo "build-guest-image: '$tool' is not installed (apt-get install mmdebstrap e2fsprogs qemu-utils)" >&2; exit 1; }
done

if [ -x "$netbird_client" ]; then
  netbird_sha256=$(sha256sum "$netbird_client" | cut -d' ' -f1)
else
  netbird_sha256=absent
fi
recipe_hash=$({
  sha256sum "$0" | cut -d' ' -f1
  printf '%s\n' "$suite" "$mirror" "$disk_size" "${packages[@]}" "netbird:$netbird_sha256"
} | sha256sum | cut -c1-16)
cache=.tools/guest-image
out="$cache/$recipe_hash"

if [ -f "$out/manifest.json" ]; then
  echo "guest image $recipe_hash is cached (recipe unchanged)" >&2
  echo "$PWD/$out"
  exit 0
fi

started=$(date +%s)
mkdir -p "$cache"
work=$(mktemp -d "$cache/.build-$recipe_hash-XXXXXX")
chmod 755 "$work"
# --one-file-system: an interrupted mmdebstrap may leave its /proc and /dev mounts inside the rootfs.
trap 'rm -rf --one-file-system "$work"' EXIT
rootfs="$work/rootfs"
mkdir -p "$rootfs"

if [ "$netbird_sha256" = absent ]; then
  echo "build-guest-image: $netbird_client is absent (scripts/install-netbird.sh builds it): the image has no NetBird client" >&2
  netbird_hooks=()
else
  # What NetBird's installer leaves behind: the binary on the PATH and its service, enabled.
  cat >"$work/netbird.service" <<'UNIT'
[Unit]
Description=NetBird
After=network-online.target syslog.target
Wants=network-online.target

[Service]
ExecStart=/usr/bin/netbird service run --config /etc/netbird/config.json --log-level info --daemon-addr unix:///var/run/netbird.sock --log-file /var/log/netbird/client.log
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
UNIT
  netbird_hooks=(
    --customize-hook="install -m 0755 '$netbird_client' \"\$1/usr/bin/netbird\""
    --customize-hook="install -m 0644 '$work/netbird.service' \"\$1/etc/systemd/system/netbird.service\""
    --customize-hook='mkdir -p "$1/etc/netbird" "$1/var/log/netbird" "$1/etc/systemd/system/multi-user.target.wants"'
    --customize-hook='ln -sf /etc/systemd/system/netbird.service "$1/etc/systemd/system/multi-user.target.wants/netbird.service"'
  )
fi

include=$(IFS=,; echo "${packages[*]}")
echo "build-guest-image: mmdebstrap $suite from $mirror into $rootfs" >&2
mmdebstrap --mode=root --variant=minbase --include="$include" \
  --customize-hook='echo "LABEL=root / ext4 defaults,errors=remount-ro 0 1" > "$1/etc/fstab"' \
  --customize-hook='echo debian > "$1/etc/hostname"' \
  --customize-hook=': > "$1/etc/machine-id"; rm -f "$1/var/lib/dbus/machine-id"' \
  --customize-hook='rm -f "$1"/etc/ssh/ssh_host_*' \
  --customize-hook='echo "en_US.UTF-8 UTF-8" > "$1/etc/locale.gen"; chroot "$1" locale-gen; echo "LANG=en_US.UTF-8" > "$1/etc/default/locale"' \
  `# DHCP on the NIC is cloud-init's: it renders the network-config Proxmox generates (ip=dhcp → dhcp4), or its fallback` \
  --customize-hook='printf "auto lo\niface lo inet loopback\n\nsource /etc/network/interfaces.d/*\n" > "$1/etc/network/interfaces"' \
  --customize-hook='printf "datasource_list: [ NoCloud, None ]\n" > "$1/etc/cloud/cloud.cfg.d/90_datasources.cfg"' \
  "${netbird_hooks[@]}" \
  --customize-hook="cp -L \"\$1/vmlinuz\" '$work/vmlinuz'; cp -L \"\$1/initrd.img\" '$work/initrd.img'" \
  --customize-hook="chroot \"\$1\" dpkg-query -W -f '\${Package} \${Version}\n' > '$work/packages.txt'" \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
  "$suite" "$rootfs" "$mirror" >&2

echo "build-guest-image: ext4 ($disk_size, LABEL=root) and qcow2" >&2
mkfs.ext4 -q -L root -d "$rootfs" "$work/disk.raw" "$disk_size"
qemu-img convert -O qcow2 "$work/disk.raw" "$work/disk.qcow2"
rm -rf "$work/disk.raw" "$rootfs" "$work/netbird.service"

seconds=$(($(date +%s) - started))
kernel_release=$(awk '$1=="linux-image-cloud-amd64"{print $2}' "$work/packages.txt")
cloud_init=$(awk '$1=="cloud-init"{print $2}' "$work/packages.txt")
cat >"$work/manifest.json" <<JSON
{
  "recipeHash": "$recipe_hash",
  "suite": "$suite",
  "mirror": "$mirror",
  "disk": "disk.qcow2",
  "kernel": "vmlinuz",
  "initrd": "initrd.img",
  "kernelCommandLine": "root=LABEL=root ro console=ttyS0 net.ifnames=0",
  "packages": "packages.txt",
  "linuxImageCloudAmd64": "$kernel_release",
  "cloudInit": "$cloud_init",
  "netbirdClient": $(if [ "$netbird_sha256" = absent ]; then echo '{ "present": false, "reason": "'"$netbird_client"' was absent when the image was built" }'; else echo '{ "present": true, "sha256": "'"$netbird_sha256"'" }'; fi),
  "builtAt": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "buildSeconds": $seconds
}
JSON
rm -rf "$out"
mv "$work" "$out"
trap - EXIT
echo "build-guest-image: built $recipe_hash in ${seconds}s" >&2
echo "$PWD/$out"
