# Sourced by tools/local.sh, tools/test.sh and .ci/run: what the emulators need
# besides Python, and the commands that install each piece. One table, so that
# a newcomer is told the same commands CI runs.

# The gcloud components the tests and the local stack start.
EMULATOR_COMPONENTS="cloud-datastore-emulator cloud-firestore-emulator pubsub-emulator"

# The Debian/Ubuntu package of a gcloud component (Google's apt repository).
apt_package() {
  echo "google-cloud-cli-${1#cloud-}"
}

# Prints what is missing, one name a line: gcloud, java, each emulator
# component, and redis-server when the first argument is "redis".
missing_prerequisites() {
  local gcloud root component
  gcloud=$(command -v gcloud || true)
  [ -n "$gcloud" ] || echo gcloud
  command -v java >/dev/null || echo java
  if [ "${1:-}" = redis ]; then
    command -v redis-server >/dev/null || echo redis-server
  fi
  # gcloud lives in <sdk root>/bin; its components in <sdk root>/platform.
  root=$([ -n "$gcloud" ] && dirname "$(dirname "$(readlink -f "$gcloud")")")
  for component in $EMULATOR_COMPONENTS; do
    [ -n "$root" ] && [ -d "$root/platform/$component" ] || echo "$component"
  done
}

# Prints the commands that install the pieces named (as missing_prerequisites names them).
install_commands() {
  local apt=() components=() item
  for item in "$@"; do
    case "$item" in
      gcloud) apt+=(google-cloud-cli) ;;
      java) apt+=(default-jre-headless) ;;
      redis-server) apt+=(redis-server) ;;
      *) apt+=("$(apt_package "$item")") components+=("$item") ;;
    esac
  done
  echo "On Debian/Ubuntu:"
  if ! grep -rqs packages.cloud.google.com /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; then
    echo "  curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg | sudo gpg --dearmor -o /usr/share/keyrings/cloud.google.gpg"
    echo "  echo 'deb [signed-by=/usr/share/keyrings/cloud.google.gpg] https://packages.cloud.google.com/apt cloud-sdk main' | sudo tee /etc/apt/sources.list.d/google-cloud-sdk.list"
  fi
  echo "  sudo apt-get update && sudo apt-get install -y ${apt[*]}"
  if [ ${#components[@]} -gt 0 ]; then
    echo "Or, with a gcloud installed from Google's archive (not apt):"
    echo "  gcloud components install --quiet beta ${components[*]}"
  fi
}

# Prints what is missing and how to install it, to stderr; returns 1 when anything is.
check_prerequisites() {
  local missing
  missing=$(missing_prerequisites "$@")
  [ -z "$missing" ] && return 0
  {
    echo "Missing:" $missing
    # shellcheck disable=SC2086 # one name a word
    install_commands $missing
  } >&2
  return 1
}
