# Sourced by scripts/test and scripts/lab: make .venv and install the project with the extras
# named in $HUBCLUSTER_EXTRAS, only when pyproject.toml changed since the last install.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-python3}
if [ ! -x "$top/.venv/bin/python" ]; then
  "$python" -m venv "$top/.venv"
fi
stamp="$top/.venv/.installed-${HUBCLUSTER_EXTRAS//,/-}"
if [ ! -f "$stamp" ] || [ "$top/pyproject.toml" -nt "$stamp" ]; then
  "$top/.venv/bin/python" -m pip install --quiet --upgrade pip
  "$top/.venv/bin/python" -m pip install --quiet -e "$top[$HUBCLUSTER_EXTRAS]"
  touch "$stamp"
fi
export PATH="$top/.venv/bin:$PATH"
