#!/usr/bin/env bash
# Install ika's build/test dependencies (Debian 12 packages only), then extract the regression
# data sets (single files of python3-sklearn and python3-statsmodels) without installing those
# packages, which would pull in SciPy, pandas and more.
# Idempotent: apt is skipped entirely when every package is already installed, and the data step
# when every data file is already there.
#
# Environment knobs:
#   IKA_DATA_DIR=<dir>   where the data files go (default /usr/local/share/ika/data, the default
#                        of ika::data::default_data_dir(), which reads the same variable)
#   IKA_SKIP_DATA=1      do not fetch the data files
# A data file that cannot be fetched is a warning, not a failure: the tests and examples that
# need it say so and name this script.
set -euo pipefail

PACKAGES=(
  cmake
  g++
  ninja-build
  libeigen3-dev
  xtl-dev
  libxsimd-dev
  doctest-dev
  zlib1g-dev
  libbenchmark-dev
  libopenblas-dev
  dataset-fashion-mnist
)

SUDO=()
need_sudo() { # need_sudo <what>: fills SUDO when not root; fails when that is impossible
  if [[ "$(id -u)" -ne 0 && ${#SUDO[@]} -eq 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
      SUDO=(sudo)
    else
      echo "setup.sh: not root and sudo is unavailable; $1" >&2
      return 1
    fi
  fi
}

missing=()
for pkg in "${PACKAGES[@]}"; do
  status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
  if [[ "$status" != "install ok installed" ]]; then
    missing+=("$pkg")
  fi
done

apt_updated=0
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "setup.sh: all ${#PACKAGES[@]} packages already installed"
else
  echo "setup.sh: installing: ${missing[*]}"
  need_sudo "install manually: ${missing[*]}" || exit 1
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
  apt_updated=1
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

# --- data files: "<package> <path inside the package>", copied flat into DATA_DIR ------------
DATA_DIR="${IKA_DATA_DIR:-/usr/local/share/ika/data}"
DATA_FILES=(
  "python3-sklearn ./usr/lib/python3/dist-packages/sklearn/datasets/data/boston_house_prices.csv"
  "python3-sklearn ./usr/lib/python3/dist-packages/sklearn/datasets/data/diabetes_data_raw.csv.gz"
  "python3-sklearn ./usr/lib/python3/dist-packages/sklearn/datasets/data/diabetes_target.csv.gz"
  "python3-statsmodels ./usr/lib/python3/dist-packages/statsmodels/datasets/co2/co2.csv"
)

warn() { echo "setup.sh: WARNING: $*" >&2; }
DATA_TMP=""

fetch_data() {
  local entry pkg member
  local -a packages=()
  for entry in "${DATA_FILES[@]}"; do
    read -r pkg member <<<"$entry"
    if [[ ! -s "$DATA_DIR/$(basename "$member")" && " ${packages[*]} " != *" $pkg "* ]]; then
      packages+=("$pkg")
    fi
  done
  if [[ ${#packages[@]} -eq 0 ]]; then
    echo "setup.sh: all ${#DATA_FILES[@]} data files already in $DATA_DIR"
    return 0
  fi

  local -a install_to=()
  if ! mkdir -p "$DATA_DIR" 2>/dev/null || [[ ! -w "$DATA_DIR" ]]; then
    if ! need_sudo "cannot write $DATA_DIR (set IKA_DATA_DIR to a writable directory)"; then
      warn "data files not fetched"
      return 0
    fi
    install_to=("${SUDO[@]}")
    "${install_to[@]}" mkdir -p "$DATA_DIR"
  fi

  local tmp
  tmp="$(mktemp -d)"
  DATA_TMP="$tmp"
  trap 'rm -rf "$DATA_TMP"' EXIT
  # apt drops to the _apt user to download; let it write there (else it warns and runs as root)
  if [[ "$(id -u)" -eq 0 ]] && id _apt >/dev/null 2>&1; then chown _apt "$tmp"; fi

  echo "setup.sh: fetching data files from: ${packages[*]}"
  if ! (cd "$tmp" && apt-get download "${packages[@]}"); then
    if [[ $apt_updated -eq 0 ]] && need_sudo "cannot run apt-get update"; then
      echo "setup.sh: apt-get download failed; updating the package lists and trying again"
      "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update || true
    fi
    if ! (cd "$tmp" && apt-get download "${packages[@]}"); then
      warn "could not download ${packages[*]}; the data files stay missing"
      return 0
    fi
  fi

  local deb name got=0
  for entry in "${DATA_FILES[@]}"; do
    read -r pkg member <<<"$entry"
    name="$(basename "$member")"
    [[ -s "$DATA_DIR/$name" ]] && continue
    deb="$(ls "$tmp/${pkg}"_*.deb 2>/dev/null | head -n 1)"
    if [[ -z "$deb" ]] ||
       ! dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" "$member" ||
       [[ ! -s "$tmp/$member" ]]; then
      warn "$name not found in $pkg ($member); it stays missing"
      continue
    fi
    # through a temporary name, so that an interrupted copy is never taken for the file
    if "${install_to[@]}" install -m 644 "$tmp/$member" "$DATA_DIR/.$name.part" &&
       "${install_to[@]}" mv -f "$DATA_DIR/.$name.part" "$DATA_DIR/$name"; then
      got=$((got + 1))
    else
      warn "could not write $DATA_DIR/$name"
    fi
  done
  echo "setup.sh: $got data file(s) extracted into $DATA_DIR"
}

if [[ "${IKA_SKIP_DATA:-0}" == "1" ]]; then
  echo "setup.sh: IKA_SKIP_DATA=1: data files not fetched"
else
  fetch_data || warn "fetching the data files failed; they stay missing"
fi
