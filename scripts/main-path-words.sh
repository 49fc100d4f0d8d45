#!/usr/bin/env bash
# The course's main path in words: each chapter README without its speed-track
# sections, counted with `wc -w`. A section is on the speed track when its
# heading ends in "(speed track)"; it runs to the next heading of its level or
# above, so a marked `##` takes its `###` sections with it. Headings inside
# ``` fences are code, not headings.
#
#   scripts/main-path-words.sh                  # chapters 00-11, the main path's goal
#   scripts/main-path-words.sh chapters/12-*/README.md
#   scripts/main-path-words.sh --openers        # also rewrite each chapter's opener (00-12)
#
# --openers puts the counts into the "Reading time" sentence under each
# title: "about N minutes (W words)" for the main path, then the same for
# the speed track where the sentence names one.
#
# Prints, per README, the main path's words and the speed track's, and the
# reading time of each at 200 words a minute; then the totals. "folded" is the
# part of the main path inside <details> blocks (the exercises' answers, shut
# until a reader opens them): counted in "main", shown apart.
set -euo pipefail
cd "$(dirname "$0")/.."

openers=0
if [ "${1:-}" = --openers ]; then
  openers=1
  shift
  [ $# -gt 0 ] || set -- chapters/[01][0-9]-*/README.md
fi
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

# "about 12 minutes (2,316 words)", "about a minute (108 words)", "under a minute (52 words)"
reading() {
  local m words
  m=$(minutes "$1")
  words=$(echo "$1" | sed -e ':a' -e 's/\([0-9]\)\([0-9]\{3\}\)\($\|,\)/\1,\2\3/' -e 'ta')  # 12,708
  case $m in
    0) echo "under a minute ($words words)" ;;
    1) echo "about a minute ($words words)" ;;
    *) echo "about $m minutes ($words words)" ;;
  esac
}

# Replaces the first (main path) and second (speed track) "about N minutes
# (W words)" after "Reading time" in $1's first 12 lines; the words may wrap.
rewrite_opener() {
  MAIN="$(reading "$2")" SPEED="$(reading "$3")" perl -0pi -e '
    my $t = qr/(?:about\s+(?:\d+|a)\s+minutes?|under\s+a\s+minute)\s+\([\d,]+\s+words\)/;
    my ($head, $rest) = /\A((?:.*\n){0,12})(.*)\z/s;
    my $n = 0;
    $head =~ s/$t/++$n == 1 ? $ENV{MAIN} : $n == 2 ? $ENV{SPEED} : $&/ge;
    $_ = $head . $rest;
    die "no reading time in the opener\n" unless $n >= 1;
  ' "$1"
}

total_main=0 total_speed=0 total_folded=0
printf '%-45s %7s %5s %7s %5s %7s\n' README main min speed min folded
for f in "$@"; do
  [ -f "$f" ] || { echo "main-path-words: $f: no such file" >&2; exit 1; }
  main=$(part main "$f" | wc -w)
  speed=$(part speed "$f" | wc -w)
  folded=$(part folded "$f" | wc -w)
  printf '%-45s %7d %5d %7d %5d %7d\n' "$f" "$main" "$(minutes "$main")" "$speed" "$(minutes "$speed")" "$folded"
  if [ "$openers" = 1 ]; then rewrite_opener "$f" "$main" "$speed"; fi
  total_main=$((total_main + main)) total_speed=$((total_speed + speed)) total_folded=$((total_folded + folded))
done
printf '%-45s %7d %5d %7d %5d %7d\n' total "$total_main" "$(minutes "$total_main")" "$total_speed" \
  "$(minutes "$total_speed")" "$total_folded"
