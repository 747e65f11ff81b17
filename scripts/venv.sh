# Sourced by scripts/test and scripts/lab: make .venv and install the project with the extras
# named in $HUBCLUSTER_EXTRAS, only when pyproject.toml changed since the last install.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-python3}
if [ ! -x "$top/.venv/bin/python" ]; then
  "$python" -m venv "$top/.venv"
fi
stamp="$top/.venv/.installed-${HUBCLUSTER_EXTRAS//,/-}"
if [ ! -f "$stamp" ] || [ "$top/pyproject.toml" -nt "$stamp" ] \
  || [ "$top/constraints.txt" -nt "$stamp" ]; then
  "$top/.venv/bin/python" -m pip install --quiet --upgrade pip
  # The versions tested together (constraints.txt), as the hubs get them.
  "$top/.venv/bin/python" -m pip install --quiet -c "$top/constraints.txt" \
    -e "$top[$HUBCLUSTER_EXTRAS]"
  touch "$stamp"
fi
export PATH="$top/.venv/bin:$PATH"
