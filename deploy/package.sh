#!/usr/bin/env bash
# Builds the source zips of the three buildsync Cloud Functions.
#
#   deploy/package.sh OUTDIR [SETTINGS_FILE]
#
# Writes OUTDIR/planner.zip, OUTDIR/shard.zip and OUTDIR/sync.zip. Each holds
# exactly:
#   main.py, requirements.txt   from functions/<name>/
#   buildsync/                  a copy of shared/buildsync (with its generated
#                               *_pb2*.py, without __pycache__ or *.pyc)
#   settings.json|settings.cfg  the settings file: settings.json for a .json
#                               file (proto3 JSON), settings.cfg for text
#                               format (.cfg, .textproto, .txtpb, .pbtxt)
# and writes OUTDIR/settings.sha256, the SHA-256 of the packaged settings file,
# which Terraform compares with its settings_file variable.
#
# SETTINGS_FILE defaults to $BUILDSYNC_SETTINGS_FILE. Relative paths are taken
# from the current directory; the script runs from any directory. The zips are
# reproducible (sorted entries, fixed timestamps), so an unchanged tree gives
# byte-identical zips and Terraform leaves the functions alone.
#
# When the Python that runs this script ($PYTHON, default python3) has
# protobuf, the settings file is parsed and validated first, with the same
# code the functions run.
set -euo pipefail

usage() {
  echo "usage: $0 OUTDIR [SETTINGS_FILE]   (SETTINGS_FILE defaults to \$BUILDSYNC_SETTINGS_FILE)" >&2
  exit 2
}

[[ $# -ge 1 && $# -le 2 ]] || usage
outdir=$1
settings=${2:-${BUILDSYNC_SETTINGS_FILE:-}}
[[ -n $settings ]] || usage

python=${PYTHON:-python3}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
functions=(planner shard sync)

die() {
  echo "package.sh: $*" >&2
  exit 1
}

[[ -f $settings ]] || die "settings file $settings does not exist"
case $settings in
  *.json) settings_name=settings.json ;;
  *.cfg | *.textproto | *.txtpb | *.pbtxt) settings_name=settings.cfg ;;
  *) die "settings file $settings: use .json (proto3 JSON) or .cfg, .textproto, .txtpb, .pbtxt (text format)" ;;
esac

package=$repo/shared/buildsync
[[ -f $package/__init__.py ]] || die "no core package at $package"
compgen -G "$package/proto/*_pb2.py" >/dev/null ||
  die "no generated *_pb2.py in $package/proto: run python shared/generate_protos.py"
for name in "${functions[@]}"; do
  for file in main.py requirements.txt; do
    [[ -f $repo/functions/$name/$file ]] || die "missing functions/$name/$file"
  done
done

# Validate the settings with the functions' own code where the packaging
# Python can import it (it needs protobuf).
status=0
PYTHONPATH=$repo/shared "$python" - "$settings" <<'EOF' || status=$?
import sys

try:
    from buildsync.errors import SettingsError
    from buildsync.rules.settings import load_settings
except Exception as error:  # no protobuf, or one the generated code rejects
    print(f"package.sh: warning: cannot load buildsync.rules.settings ({error}); settings packaged without validation", file=sys.stderr)
    sys.exit(3)
try:
    settings = load_settings(sys.argv[1])
except SettingsError as error:
    print(f"package.sh: {error}", file=sys.stderr)
    sys.exit(1)
print(f"package.sh: settings valid: {len(settings.backends)} backend(s)", file=sys.stderr)
EOF
case $status in
  0 | 3) ;;
  *) die "settings file $settings is invalid" ;;
esac

mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)

for name in "${functions[@]}"; do
  "$python" - "$repo" "$name" "$settings" "$settings_name" "$outdir/$name.zip" <<'EOF'
import os
import pathlib
import sys
import zipfile

repo, name, settings, settings_name, target = sys.argv[1:]
repo = pathlib.Path(repo)

entries = {
    "main.py": repo / "functions" / name / "main.py",
    "requirements.txt": repo / "functions" / name / "requirements.txt",
    settings_name: pathlib.Path(settings),
}
package = repo / "shared" / "buildsync"
for path in package.rglob("*"):
    relative = path.relative_to(package)
    if path.is_dir() or "__pycache__" in relative.parts or path.suffix in (".pyc", ".pyo"):
        continue
    if any(part.endswith(".egg-info") for part in relative.parts):
        continue
    entries[str(pathlib.PurePosixPath("buildsync", *relative.parts))] = path

temporary = target + ".tmp"
with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
    for arcname in sorted(entries):
        info = zipfile.ZipInfo(arcname, date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, entries[arcname].read_bytes())
os.replace(temporary, target)
print(f"package.sh: {target}: {len(entries)} files", file=sys.stderr)
EOF
done

sha256sum "$settings" | cut -d' ' -f1 >"$outdir/settings.sha256"
echo "package.sh: wrote ${functions[*]/%/.zip} and settings.sha256 to $outdir (settings as $settings_name)" >&2
