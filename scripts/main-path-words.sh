#!/usr/bin/env bash
# The course's main path in words: each chapter README without its speed-track
# sections, counted with `wc -w`. A section is on the speed track when its
# heading ends in "(speed track)"; it runs to the next heading of its level or
# above, so a marked `##` takes its `###` sections with it. Headings inside
# ``` fences are code, not headings.
#
#   scripts/main-path-words.sh                  # chapters 00-11, the main path's goal
#   scripts/main-path-words.sh chapters/12-*/README.md
#
# Prints, per README, the main path's words and the speed track's, and the
# reading time of each at 200 words a minute; then the totals.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -eq 0 ]; then
  set -- chapters/0[0-9]-*/README.md chapters/1[01]-*/README.md
fi

# Prints the lines of $1 on the main path (part=main) or on the speed track
# (part=speed); every line is one or the other, so the two counts add up to
# the file's `wc -w`.
part() {
  awk -v part="$1" '
    /^```/ { fence = !fence }
    !fence && /^#+ / {
      level = index($0, " ") - 1
      if (speed && level <= speed_level) speed = 0
      if (!speed && $0 ~ /\(speed track\)[[:space:]]*$/) { speed = 1; speed_level = level }
    }
    (part == "speed") == (speed == 1) { print }
  ' "$2"
}

minutes() { echo $(( ($1 + 100) / 200 )); }

total_main=0 total_speed=0
printf '%-45s %7s %5s %7s %5s\n' README main min speed min
for f in "$@"; do
  [ -f "$f" ] || { echo "main-path-words: $f: no such file" >&2; exit 1; }
  main=$(part main "$f" | wc -w)
  speed=$(part speed "$f" | wc -w)
  printf '%-45s %7d %5d %7d %5d\n' "$f" "$main" "$(minutes "$main")" "$speed" "$(minutes "$speed")"
  total_main=$((total_main + main)) total_speed=$((total_speed + speed))
done
printf '%-45s %7d %5d %7d %5d\n' total "$total_main" "$(minutes "$total_main")" "$total_speed" \
  "$(minutes "$total_speed")"
