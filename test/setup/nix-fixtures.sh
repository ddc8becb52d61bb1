#!/usr/bin/env bash
# shellcheck disable=SC2016 # single-quoted code is meant for another shell or for Nix
# Test fixtures for flake-ci's Nix handling (see test/setup/README.md).
#
#   bash test/setup/nix-fixtures.sh [--verify] [CACHE_DIR]
#
# Produces, cached in CACHE_DIR (default ${FLAKE_CI_TEST_CACHE:-/var/cache/flake-ci}):
#   sidroot/                      Debian sid minbase root with nix-bin (source of the binaries)
#   nix-<ver>/bin/nix             Nix <ver> from sid, relocated so it runs on this (older) host
#   release/nix-<ver>-x86_64-linux.tar.xz(.sha256)
#                                 a release tarball in the official layout (install, .reginfo, store/)
# --verify additionally installs the tarball into a throw-away /nix (tmpfs in a private mount
# namespace), checks the store and builds a trivial derivation with it.
#
# Last lines on stdout:  NIX234=<bin dir>  TARBALL=<path>  SHA256=<hex>
# Progress goes to stderr. Needs root. Never touches the host's /nix or /etc/nix.
set -euo pipefail
umask 022

NIX_VERSION=2.34.8
SYSTEM=x86_64-linux
# Bump when the layout of what this script produces changes: forces a rebuild of cached results.
LAYOUT=1
DEBIAN_MIRROR=${FLAKE_CI_DEBIAN_MIRROR:-http://deb.debian.org/debian}
NIX_LINKS=(nix-store nix-build nix-env nix-instantiate nix-daemon nix-channel nix-collect-garbage
  nix-copy-closure nix-prefetch-url nix-hash nix-shell)

SELF=$(readlink -f "${BASH_SOURCE[0]}")

# Seconds since the outer invocation started (the namespace children inherit the start time).
export NIX_FIXTURES_T0=${NIX_FIXTURES_T0:-$(date +%s)}
log() { printf '[nix-fixtures %3ds] %s\n' "$(($(date +%s) - NIX_FIXTURES_T0))" "$*" >&2; }
die() { printf '[nix-fixtures] error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
# Helpers

# Unmount everything mounted at or below $1 (deepest first).
umount_under() {
  local dir=$1 m
  [[ -e $dir ]] || return 0
  dir=$(readlink -f "$dir")
  while read -r m; do
    [[ -n $m ]] || continue
    umount "$m" 2>/dev/null || umount -l "$m" || true
  done < <(findmnt -rn -o TARGET | awk -v d="$dir" '$0 == d || index($0, d "/") == 1' | sort -r)
}

# rm -rf, but only after making sure nothing is mounted below the directory.
safe_rm() {
  local dir=$1
  [[ -e $dir ]] || return 0
  umount_under "$dir"
  if findmnt -rn -o TARGET | awk -v d="$(readlink -f "$dir")" '$0 == d || index($0, d "/") == 1' | grep -q .; then
    die "refusing to remove $dir: something is still mounted below it"
  fi
  rm -rf -- "$dir"
}

ensure_host_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "installing host packages: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2 ||
      { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2; }
  fi
}

# Private nix configuration so neither the host's /etc/nix nor ~/.config/nix is read.
write_nix_conf() {
  local dir=$1
  mkdir -p "$dir/etc" "$dir/home"
  cat >"$dir/etc/nix.conf" <<EOF
build-users-group =
sandbox = false
substituters =
experimental-features = nix-command flakes
EOF
  : >"$dir/etc/user.conf"
  export NIX_CONF_DIR=$dir/etc NIX_USER_CONF_FILES=$dir/etc/user.conf HOME=$dir/home
  export XDG_CACHE_HOME=$dir/home/.cache XDG_CONFIG_HOME=$dir/home/.config XDG_DATA_HOME=$dir/home/.local/share
  export XDG_STATE_HOME=$dir/home/.local/state NIX_REMOTE=local NIX_PATH=
  unset NIX_STORE_DIR NIX_STATE_DIR NIX_LOG_DIR NIX_DATA_DIR NIX_BIN_DIR NIX_CONFIG NIX_SSL_CERT_FILE LD_LIBRARY_PATH
}

# A throw-away /nix: a tmpfs over /nix. Only called inside `unshare -m` (private propagation),
# so the host's /nix is never changed and the mount disappears with the namespace.
private_nix() {
  [[ -d /nix ]] || mkdir /nix
  mount -t tmpfs -o mode=0755 tmpfs /nix
  [[ $(findmnt -n -o FSTYPE --mountpoint /nix) == tmpfs && -z $(ls -A /nix) ]] || die "could not mount a private /nix"
  mkdir -p /nix/store /nix/var/nix
}

# ---------------------------------------------------------------------------------------------
# Step 1: Debian sid root with nix-bin

ROOT_MOUNTS=()
chroot_umount() {
  local i
  for ((i = ${#ROOT_MOUNTS[@]} - 1; i >= 0; i--)); do
    umount "${ROOT_MOUNTS[i]}" 2>/dev/null || umount -l "${ROOT_MOUNTS[i]}" 2>/dev/null || true
  done
  ROOT_MOUNTS=()
}

check_root_nix_version() {
  local v
  v=$(chroot "$1" dpkg-query -W -f='${Version}' nix-bin)
  [[ $v == "$NIX_VERSION"+* || $v == "$NIX_VERSION"-* || $v == "$NIX_VERSION" ]] ||
    die "sid root $1 has nix-bin $v, expected $NIX_VERSION (Debian sid moved on? update NIX_VERSION)"
  printf '%s' "$v"
}

ensure_sidroot() {
  local marker=$ROOT/.flake-ci-sidroot
  if [[ -x $ROOT/usr/bin/nix ]]; then
    if [[ ! -f $marker ]]; then
      # A root made by hand earlier: adopt it once its nix-bin version is right.
      local v
      v=$(check_root_nix_version "$ROOT")
      printf '%s' "$v" >"$marker"
    fi
    log "sid root: cached ($ROOT, nix-bin $(cat "$marker"))"
    return
  fi

  ensure_host_packages debootstrap
  local tmp=$ROOT.partial
  safe_rm "$tmp"
  [[ -e $ROOT ]] && { log "removing incomplete $ROOT"; safe_rm "$ROOT"; }
  log "debootstrap --variant=minbase sid $tmp ($DEBIAN_MIRROR)"
  debootstrap --variant=minbase sid "$tmp" "$DEBIAN_MIRROR" >&2

  # No services may start inside the chroot.
  printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"
  chmod 755 "$tmp/usr/sbin/policy-rc.d"

  trap chroot_umount EXIT
  local m
  for m in proc dev dev/pts; do
    mkdir -p "$tmp/$m"
    mount --bind "/$m" "$tmp/$m"
    ROOT_MOUNTS+=("$tmp/$m")
  done
  log "chroot apt-get install nix-bin"
  if ! chroot "$tmp" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q nix-bin >&2; then
    log "install failed; apt-get update (Check-Valid-Until=false) and retry"
    chroot "$tmp" apt-get -o Acquire::Check-Valid-Until=false update -q >&2
    chroot "$tmp" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q nix-bin >&2
  fi
  chroot "$tmp" apt-get clean >&2
  chroot_umount
  trap - EXIT

  [[ -x $tmp/usr/bin/nix ]] || die "nix-bin installed no /usr/bin/nix"
  local v
  v=$(check_root_nix_version "$tmp")
  printf '%s' "$v" >"$tmp/.flake-ci-sidroot"
  mv "$tmp" "$ROOT"
  log "sid root ready: $ROOT"
}

# ---------------------------------------------------------------------------------------------
# Step 2: relocated Nix in $RELOC

# Writes "soname<TAB>path-inside-root" for nix's libraries and the loader.
list_root_libs() {
  chroot "$ROOT" /bin/sh -c '
    set -e
    ldd /usr/bin/nix > /tmp/.flake-ci-ldd
    if grep -q "not found" /tmp/.flake-ci-ldd; then cat /tmp/.flake-ci-ldd >&2; exit 1; fi
    while read -r a b c rest; do
      case "$a" in
        linux-vdso*) ;;
        /*) printf "%s\t%s\n" "${a##*/}" "$(readlink -f "$a")" ;;
        *) [ "$b" = "=>" ] && printf "%s\t%s\n" "$a" "$(readlink -f "$c")" ;;
      esac
    done < /tmp/.flake-ci-ldd
    rm -f /tmp/.flake-ci-ldd
    # Nix dlopen()s libnss_dns.so.2 itself (to preload the resolver): ship the sid ones, else the
    # older glibc module of the host is loaded into the newer libc.
    for l in libnss_dns.so.2 libnss_files.so.2; do
      p=$(readlink -f /usr/lib/x86_64-linux-gnu/$l 2>/dev/null || true)
      [ -f "$p" ] && printf "%s\t%s\n" "$l" "$p"
    done
    true'
}

reloc_fingerprint() {
  printf 'layout=%s nix=%s script=%s\n' "$LAYOUT" "$(sha256sum "$ROOT/usr/bin/nix" | cut -d' ' -f1)" \
    "$(sha256sum "$SELF" | cut -d' ' -f1)"
}

# Copies the sid files the nix store path carries besides the binary (units, profile scripts).
copy_extras() {
  local dest=$1 f
  mkdir -p "$dest/systemd" "$dest/profile.d"
  for f in nix-daemon.service nix-daemon.socket; do
    [[ -f $ROOT/usr/lib/systemd/system/$f ]] && cp "$ROOT/usr/lib/systemd/system/$f" "$dest/systemd/"
  done
  for f in nix.sh nix-daemon.sh nix.fish nix-daemon.fish; do
    [[ -f $ROOT/usr/share/doc/nix-bin/examples/$f ]] && cp "$ROOT/usr/share/doc/nix-bin/examples/$f" "$dest/profile.d/"
  done
  true
}

check_version() {
  local out want="${1##*/} (Nix) $NIX_VERSION"
  out=$("$1" --version) || die "$1 --version failed"
  [[ $out == "$want" ]] || die "$1 --version printed '$out', expected '$want'"
}

ensure_reloc() {
  local marker=$RELOC/.flake-ci-reloc fp
  fp=$(reloc_fingerprint)
  if [[ -f $marker && $(cat "$marker") == "$fp" ]] && "$RELOC/bin/nix" --version >/dev/null 2>&1; then
    check_version "$RELOC/bin/nix"
    log "relocated nix: cached ($RELOC)"
    return
  fi
  ensure_host_packages patchelf
  log "relocating nix into $RELOC"
  safe_rm "$RELOC"
  mkdir -p "$RELOC/bin" "$RELOC/lib"
  list_root_libs >"$RELOC/.flake-ci-libs" || die "ldd of sid nix failed"
  local name path n=0
  while IFS=$'\t' read -r name path; do
    cp "$ROOT$path" "$RELOC/lib/$name"
    n=$((n + 1))
  done <"$RELOC/.flake-ci-libs"
  [[ -f $RELOC/lib/ld-linux-x86-64.so.2 && -f $RELOC/lib/libc.so.6 ]] || die "loader or libc missing from ldd output"
  cp "$ROOT/usr/bin/nix" "$RELOC/bin/nix"
  patchelf --set-interpreter "$RELOC/lib/ld-linux-x86-64.so.2" --set-rpath "$RELOC/lib" "$RELOC/bin/nix"
  for path in "$RELOC"/lib/*; do
    case ${path##*/} in libc.so.6 | ld-linux-x86-64.so.2) ;; *) patchelf --set-rpath "$RELOC/lib" "$path" ;; esac
  done
  for name in "${NIX_LINKS[@]}"; do ln -s nix "$RELOC/bin/$name"; done

  # Same extras as the store path, pointing at this directory.
  local extras
  extras=$(mktemp -d)
  copy_extras "$extras"
  if compgen -G "$extras/systemd/*" >/dev/null; then
    mkdir -p "$RELOC/lib/systemd/system"
    for path in "$extras"/systemd/*; do
      sed "s|/usr/bin/nix-daemon|$RELOC/bin/nix-daemon|g" "$path" >"$RELOC/lib/systemd/system/${path##*/}"
    done
  fi
  if compgen -G "$extras/profile.d/*" >/dev/null; then
    mkdir -p "$RELOC/etc/profile.d"
    cp "$extras"/profile.d/* "$RELOC/etc/profile.d/"
  fi
  rm -rf "$extras"

  check_version "$RELOC/bin/nix"
  check_version "$RELOC/bin/nix-store"
  if LD_LIBRARY_PATH='' ldd "$RELOC/bin/nix" | grep -v -e "$RELOC/lib/" -e linux-vdso | grep -q .; then
    ldd "$RELOC/bin/nix" >&2
    die "relocated nix resolves libraries outside $RELOC/lib"
  fi
  printf '%s' "$fp" >"$marker"
  log "relocated nix ready: $n libraries in $RELOC/lib"
}

# ---------------------------------------------------------------------------------------------
# Step 3: release tarball

release_fingerprint() {
  printf 'layout=%s reloc=%s cacert=%s script=%s\n' "$LAYOUT" "$(cat "$RELOC/.flake-ci-reloc")" \
    "$(sha256sum /etc/ssl/certs/ca-certificates.crt | cut -d' ' -f1)" "$(sha256sum "$SELF" | cut -d' ' -f1)"
}

cacert_version() {
  local v
  v=$(dpkg-query -W -f='${Version}' ca-certificates 2>/dev/null || true)
  v=${v%%[~+-]*}
  printf '%s' "${v:-0}"
}

release_ok() {
  [[ -f $REL/.flake-ci-release && -f $TARBALL && -f $TARBALL.sha256 ]] || return 1
  [[ $(cat "$REL/.flake-ci-release") == "$(release_fingerprint)" ]] || return 1
  [[ $(sha256sum "$TARBALL" | cut -d' ' -f1) == "$(cat "$TARBALL.sha256")" ]]
}

ensure_release() {
  if release_ok; then
    log "release tarball: cached ($TARBALL)"
    return
  fi
  ensure_host_packages nix-bin xz-utils patchelf
  log "building release tarball $TARBALL"
  local work
  work=$(mktemp -d "$CACHE/.release-work.XXXXXX")
  # The work dir is plain files only (the tmpfs /nix lives in the child namespace).
  mkdir -p "$work/src/lib" "$work/src/bin"
  local name path
  while IFS=$'\t' read -r name path; do
    cp "$ROOT$path" "$work/src/lib/$name"
  done <"$RELOC/.flake-ci-libs"
  cp "$ROOT/usr/bin/nix" "$work/src/bin/nix"
  copy_extras "$work/src"
  cp /etc/ssl/certs/ca-certificates.crt "$work/ca-bundle.crt"

  if ! unshare -m --propagation private -- bash "$SELF" --internal-build-store "$work" "$(cacert_version)"; then
    rm -rf "$work"
    die "building the release store paths failed"
  fi

  local dir=nix-$NIX_VERSION-$SYSTEM
  mkdir -p "$REL"
  rm -f "$TARBALL.partial"
  tar -C "$work/stage" --sort=name --owner=0 --group=0 --numeric-owner --mode=u+rw,uga+r \
    --mtime=@1 --hard-dereference -cf - "$dir" | xz --threads=1 >"$TARBALL.partial"
  mv "$TARBALL.partial" "$TARBALL"
  printf '%s' "$(sha256sum "$TARBALL" | cut -d' ' -f1)" >"$TARBALL.sha256"
  cp "$work/stage/$dir/.reginfo" "$REL/reginfo.txt"
  cp "$work/paths.txt" "$REL/paths.txt"
  chmod -R u+w "$work" && rm -rf "$work"
  release_fingerprint >"$REL/.flake-ci-release"
  log "release tarball ready: $TARBALL ($(du -h "$TARBALL" | cut -f1))"
}

# Runs inside `unshare -m`: builds the store paths with the host's Nix (2.8) in a tmpfs /nix and
# lays out $work/stage/nix-<ver>-<system>/{install,.reginfo,store/}.
internal_build_store() {
  local work=$1 cacertver=$2
  private_nix
  write_nix_conf "$work/nixcfg"
  export PATH=/usr/bin:/bin:/usr/sbin:/sbin

  cat >"$work/release.nix" <<'EOF'
{ src, caBundle, version, cacertVersion }:
let
  mk = name: env: script: derivation ({
    inherit name;
    system = "x86_64-linux";
    builder = "/bin/sh";
    args = [ "-c" script ];
    PATH = "/usr/bin:/bin";
  } // env);
  source = builtins.path { path = /. + src; name = "nix-${version}-debian-sid-files"; };
  bundle = builtins.path { path = /. + caBundle; name = "ca-bundle.crt"; };
in rec {
  libs = mk "nix-libs-${version}" { inherit source; } ''
    set -eu
    mkdir -p $out/lib
    cp $source/lib/* $out/lib/
    chmod u+w $out/lib/*
    for f in $out/lib/*; do
      case "''${f##*/}" in
        libc.so.6|ld-linux-x86-64.so.2) ;;
        *) patchelf --set-rpath $out/lib "$f" ;;
      esac
    done
  '';
  nix = mk "nix-${version}" { inherit source libs; } ''
    set -eu
    mkdir -p $out/bin
    cp $source/bin/nix $out/bin/nix
    chmod u+w $out/bin/nix
    patchelf --set-interpreter $libs/lib/ld-linux-x86-64.so.2 --set-rpath $libs/lib $out/bin/nix
    for l in nix-store nix-build nix-env nix-instantiate nix-daemon nix-channel \
             nix-collect-garbage nix-copy-closure nix-prefetch-url nix-hash nix-shell; do
      ln -s nix $out/bin/$l
    done
    if [ -n "$(ls $source/systemd)" ]; then
      mkdir -p $out/lib/systemd/system
      for u in $source/systemd/*; do
        sed "s|/usr/bin/nix-daemon|$out/bin/nix-daemon|g" "$u" > $out/lib/systemd/system/''${u##*/}
      done
    fi
    if [ -n "$(ls $source/profile.d)" ]; then
      mkdir -p $out/etc/profile.d
      cp $source/profile.d/* $out/etc/profile.d/
      chmod u+w $out/etc/profile.d/*
    fi
  '';
  cacert = mk "nss-cacert-${cacertVersion}" { inherit bundle; } ''
    set -eu
    mkdir -p $out/etc/ssl/certs
    cp $bundle $out/etc/ssl/certs/ca-bundle.crt
    chmod 444 $out/etc/ssl/certs/ca-bundle.crt
  '';
}
EOF
  local args=(--argstr src "$work/src" --argstr caBundle "$work/ca-bundle.crt"
    --argstr version "$NIX_VERSION" --argstr cacertVersion "$cacertver" --no-out-link)
  local nix libs cacert
  nix=$(/usr/bin/nix-build "$work/release.nix" -A nix "${args[@]}")
  libs=$(/usr/bin/nix-build "$work/release.nix" -A libs "${args[@]}")
  cacert=$(/usr/bin/nix-build "$work/release.nix" -A cacert "${args[@]}")

  # The closure must be exactly these three paths.
  local closure
  closure=$(/usr/bin/nix-store -qR "$nix" "$cacert" | sort)
  [[ $closure == "$(printf '%s\n' "$nix" "$libs" "$cacert" | sort)" ]] ||
    die "unexpected closure: $closure"
  /usr/bin/nix-store -q --references "$nix" | grep -qx "$libs" || die "$nix does not reference $libs"

  local dir=$work/stage/nix-$NIX_VERSION-$SYSTEM p r refs
  mkdir -p "$dir/store"
  # Registration in the format of nixpkgs' closureInfo (what official tarballs ship):
  # path, narHash (sha256:nix32), narSize, deriver (empty), number of references, references.
  : >"$dir/.reginfo"
  for p in $closure; do
    cp -a "$p" "$dir/store/"
    refs=$(/usr/bin/nix-store -q --references "$p" | sort)
    {
      printf '%s\n%s\n%s\n\n' "$p" "$(/usr/bin/nix-store -q --hash "$p")" "$(/usr/bin/nix-store -q --size "$p")"
      if [[ -n $refs ]]; then
        printf '%s\n' "$(wc -l <<<"$refs")"
        printf '%s\n' "$refs"
      else
        printf '0\n'
      fi
    } >>"$dir/.reginfo"
    for r in $refs; do printf '%s -> %s\n' "$p" "$r"; done >>"$work/paths.txt"
    [[ -n $refs ]] || printf '%s (no references)\n' "$p" >>"$work/paths.txt"
  done

  cat >"$dir/install" <<EOF
#!/bin/sh
# Test fixture made by flake-ci's test/setup/nix-fixtures.sh: Nix $NIX_VERSION from Debian sid,
# laid out like an official Nix release tarball. The store paths are installed by flake-ci's own
# installer; this script only carries the variables the official one has.

set -e

umask 0022

dest="/nix"
self="\$(dirname "\$0")"
nix="$nix"
cacert="$cacert"

echo "\$0: this is a flake-ci test fixture; install it with flake-ci's installer (install-nix)." >&2
echo "\$0: (self=\$self dest=\$dest nix=\$nix cacert=\$cacert)" >&2
exit 1
EOF
  chmod 755 "$dir/install"
}

# ---------------------------------------------------------------------------------------------
# Step 4: --verify, inside `unshare -m`

internal_verify() {
  local tarball=$1
  VERIFY_WORK=$(mktemp -d)
  trap 'chmod -R u+w "$VERIFY_WORK" 2>/dev/null; rm -rf "$VERIFY_WORK"' EXIT
  local work=$VERIFY_WORK
  private_nix
  write_nix_conf "$work/nixcfg"
  export PATH=/usr/bin:/bin:/usr/sbin:/sbin

  tar -C "$work" -xJf "$tarball"
  local dir=$work/nix-$NIX_VERSION-$SYSTEM nix cacert i
  [[ -x $dir/install && -f $dir/.reginfo && -d $dir/store ]] || die "tarball layout is wrong"
  nix=$(sed -n 's/^nix="\(.*\)"$/\1/p' "$dir/install")
  cacert=$(sed -n 's/^cacert="\(.*\)"$/\1/p' "$dir/install")
  [[ $nix == /nix/store/*-nix-"$NIX_VERSION" && $cacert == /nix/store/*-nss-cacert-* ]] ||
    die "install script lacks nix=/cacert= lines"

  for i in "$dir"/store/*; do
    cp -RP --preserve=ownership,timestamps "$i" "/nix/store/${i##*/}"
    chmod -R a-w "/nix/store/${i##*/}"
  done
  "$nix/bin/nix-store" --load-db <"$dir/.reginfo"
  "$nix/bin/nix-store" --verify --check-contents 2>&1 | tee "$work/verify.log" >&2
  if grep -qiE 'error|warning|modified|not valid' "$work/verify.log"; then
    die "nix-store --verify --check-contents reported problems"
  fi
  check_version "$nix/bin/nix"
  check_version "$nix/bin/nix-store"
  [[ -f $cacert/etc/ssl/certs/ca-bundle.crt ]] || die "cacert path lacks etc/ssl/certs/ca-bundle.crt"
  local libs
  libs=$("$nix/bin/nix-store" -q --references "$nix" | grep -- '-nix-libs-') || die "nix does not reference the libs path"
  if ldd "$nix/bin/nix" | grep -v -e "$libs/lib/" -e linux-vdso | grep -q .; then
    ldd "$nix/bin/nix" >&2
    die "installed nix resolves libraries outside $libs"
  fi
  log "verify: nix-store --verify --check-contents ok; references of nix: $(
    "$nix/bin/nix-store" -q --references "$nix" | tr '\n' ' ')"

  local out
  out=$("$nix/bin/nix-build" --no-out-link -E \
    'derivation { name = "t"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo ok > $out" ]; }')
  [[ $(cat "$out") == ok ]] || die "nix-build of a trivial derivation gave a wrong result"
  out=$("$nix/bin/nix" build --impure --no-link --print-out-paths --expr \
    'derivation { name = "t2"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo ok2 > $out" ]; }')
  [[ $(cat "$out") == ok2 ]] || die "nix build --expr gave a wrong result"
  log "verify: tarball installs, nix-build and nix build work (Nix $NIX_VERSION)"
}

# ---------------------------------------------------------------------------------------------

main() {
  case ${1:-} in
    --internal-build-store) shift; internal_build_store "$@"; return ;;
    --internal-verify) shift; internal_verify "$@"; return ;;
  esac

  local verify=0 cache=
  while (($#)); do
    case $1 in
      --verify) verify=1 ;;
      -h | --help) sed -n '2,15p' "$SELF"; return 0 ;;
      -*) die "unknown option $1" ;;
      *) [[ -z $cache ]] || die "more than one CACHE_DIR"; cache=$1 ;;
    esac
    shift
  done
  [[ $(id -u) == 0 ]] || die "must run as root (debootstrap, chroot, mount namespaces)"
  [[ $(uname -m) == x86_64 ]] || die "only x86_64-linux is supported"

  CACHE=${cache:-${FLAKE_CI_TEST_CACHE:-/var/cache/flake-ci}}
  mkdir -p "$CACHE"
  CACHE=$(readlink -f "$CACHE")
  ROOT=$CACHE/sidroot
  RELOC=$CACHE/nix-$NIX_VERSION
  REL=$CACHE/release
  TARBALL=$REL/nix-$NIX_VERSION-$SYSTEM.tar.xz

  # Several test processes may call this at once: one at a time.
  exec 9>"$CACHE/.nix-fixtures.lock"
  flock 9

  ensure_sidroot
  ensure_reloc
  ensure_release
  if ((verify)); then
    log "verifying $TARBALL in a private /nix"
    unshare -m --propagation private -- bash "$SELF" --internal-verify "$TARBALL"
  fi

  echo "NIX234=$RELOC/bin"
  echo "TARBALL=$TARBALL"
  echo "SHA256=$(cat "$TARBALL.sha256")"
}

main "$@"
