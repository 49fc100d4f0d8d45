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
# reading time of each at 200 words a minute; then the totals. "folded" is the
# part of the main path inside <details> blocks (the exercises' answers, shut
# until a reader opens them): counted in "main", shown apart.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -eq 0 ]; then
  set -- chapters/0[0-9]-*/README.md chapters/1[01]-*/README.md
fi

# Prints the lines of $2 on the main path (part=main) or on the speed track
# (part=speed); every line is one or the other, so the two counts add up to
# the file's `wc -w`. part=folded: the main path's lines inside <details>.
part() {
  awk -v part="$1" '
    /^```/ { fence = !fence }
    !fence && /^#+ / {
      level = index($0, " ") - 1
      if (speed && level <= speed_level) speed = 0
      if (!speed && $0 ~ /\(speed track\)[[:space:]]*$/) { speed = 1; speed_level = level }
    }
    !fence && /<details>/ { folded = 1 }
    part == "folded" && !speed && folded { print }
    part != "folded" && (part == "speed") == (speed == 1) { print }
    !fence && /<\/details>/ { folded = 0 }
  ' "$2"
}

minutes() { echo $(( ($1 + 100) / 200 )); }

total_main=0 total_speed=0 total_folded=0
printf '%-45s %7s %5s %7s %5s %7s\n' README main min speed min folded
for f in "$@"; do
  [ -f "$f" ] || { echo "main-path-words: $f: no such file" >&2; exit 1; }
  main=$(part main "$f" | wc -w)
  speed=$(part speed "$f" | wc -w)
  folded=$(part folded "$f" | wc -w)
  printf '%-45s %7d %5d %7d %5d %7d\n' "$f" "$main" "$(minutes "$main")" "$speed" "$(minutes "$speed")" "$folded"
  total_main=$((total_main + main)) total_speed=$((total_speed + speed)) total_folded=$((total_folded + folded))
done
printf '%-45s %7d %5d %7d %5d %7d\n' total "$total_main" "$(minutes "$total_main")" "$total_speed" \
  "$(minutes "$total_speed")" "$total_folded"
