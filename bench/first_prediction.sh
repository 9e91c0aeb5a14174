#!/usr/bin/env bash
# Clone -> first certified prediction, following the README verbatim (issue 27).
#
#   bench/first_prediction.sh [PORT]
#
# Clones this checkout into a temporary directory, runs `make serve PORT=…` there (a new
# .venv: pinned CPU torch, then lipspline), pastes the export lines the server prints, and
# runs the README's "Upload, train, predict with a certificate" block unchanged from another
# directory. Prints the seconds from the clone to the server being ready and to the
# prediction's answer; the server is stopped at the end. Needs curl and jq, as the README says.
set -u
PORT=${1:-8123}
REPO=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
WORK=$(mktemp -d /tmp/lipspline-first-prediction.XXXXXX)
SERVE=
# make serve leads its own process group (setsid): stopping the group stops make, the server and its worker
cleanup() { [ -n "$SERVE" ] && kill -- "-$SERVE" 2>/dev/null && sleep 2 && kill -9 -- "-$SERVE" 2>/dev/null; true; }
trap cleanup EXIT
START=$(date +%s.%N)
git clone -q "$REPO" "$WORK/clone" && cd "$WORK/clone" || exit 1
setsid make serve PORT="$PORT" > "$WORK/serve.log" 2>&1 &
SERVE=$!
until grep -q "export LIPSPLINE_URL" "$WORK/serve.log"; do
  if ! kill -0 "$SERVE" 2>/dev/null; then echo "make serve stopped:"; tail -20 "$WORK/serve.log"; exit 1; fi
  sleep 0.5
done
READY=$(date +%s.%N)
eval "$(grep -E '^ *(export|source|\.) ' "$WORK/serve.log" | sed 's/^ *//')"
mkdir -p "$WORK/elsewhere" && cd "$WORK/elsewhere" || exit 1
awk '/^## Upload, train, predict/{f=1} f && /^```bash/{b=1; next} b && /^```/{exit} b' "$WORK/clone/README.md" > walk.sh
bash -e walk.sh > walk.out 2>&1
RC=$?
END=$(date +%s.%N)
tail -12 walk.out
printf 'README walk-through exit status %d; server ready %.1f s, first certified prediction %.1f s after the clone\n' \
  "$RC" "$(echo "$READY - $START" | bc)" "$(echo "$END - $START" | bc)"
exit "$RC"
