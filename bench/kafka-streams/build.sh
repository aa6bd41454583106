#!/usr/bin/env bash
# bench/kafka-streams/build.sh - builds the Kafka Streams peer of Runnel's
# benchmark and prints the directory to run it from:
#   java -cp "$(bench/kafka-streams/build.sh)/*" runnel.bench.UppercaseStreams ...
#
# The build lives outside the repository, like Kafka's jars
# (tests/kafka/broker.sh), in ${RUNNEL_CACHE:-$HOME/.cache/runnel}/kafka-streams-peer-<hash>,
# where <hash> is that of pom.xml and src/: a build is reused until the sources
# change, and a changed source gets a directory of its own. A stamp file marks
# a finished build, so an interrupted one is redone. The first build downloads
# Kafka Streams and its dependencies from Maven Central into ~/.m2 (about
# 70 MB, rocksdbjni most of it); Maven's progress goes to stderr.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${RUNNEL_CACHE:-$HOME/.cache/runnel}"

sources_hash() {
    (cd "$here" && find pom.xml src -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) \
        | sha256sum | cut -c1-12
}

built="$cache_root/kafka-streams-peer-$(sources_hash)"
if [[ -f "$built/build.complete" ]]; then
    echo "$built"
    exit 0
fi

command -v mvn >/dev/null || { echo "build.sh: Maven (mvn) is needed: apt-get install maven" >&2; exit 1; }
command -v java >/dev/null || { echo "build.sh: a JDK >= 17 is needed" >&2; exit 1; }
mkdir -p "$cache_root"
# One build at a time; the lock's descriptor lives in this subshell only.
(
    flock 9
    [[ -f "$built/build.complete" ]] && exit 0
    work="$(mktemp -d "$cache_root/kafka-streams-peer.build.XXXXXX")"
    trap 'rm -rf "$work"' EXIT
    echo "Building the Kafka Streams peer into $built (a first build downloads Kafka Streams" \
        "and its dependencies from Maven Central, about 70 MB; later runs reuse it)" >&2
    cp -r "$here/pom.xml" "$here/src" "$work/"
    # -B: plain lines; a line per downloaded file and per build step shows
    # progress. Maven's output goes to stderr: stdout carries only the
    # directory. The sed drops the colour codes Debian's Maven prints even
    # in batch mode.
    mvn -B -f "$work/pom.xml" package 2>&1 \
        | grep --line-buffered -v -e '^\[INFO\] *$' -e 'Downloading from' \
        | sed 's/\x1b\[[0-9;]*m//g' >&2 \
        || { echo "build.sh: mvn failed (is Maven Central reachable?)" >&2; exit 1; }
    rm -rf "$built"
    mkdir -p "$built"
    mv "$work/target/libs"/*.jar "$built/"
    mv "$work/target/uppercase-streams-1.jar" "$built/"
    # Earlier builds of other sources are of no further use.
    find "$cache_root" -maxdepth 1 -name 'kafka-streams-peer-*' ! -path "$built" \
        ! -name '*.build.*' -exec rm -rf {} +
    ls "$built" >"$built/build.complete"
    echo "Kafka Streams peer built: $(wc -l <"$built/build.complete") jars in $built" >&2
) 9>"$cache_root/.kafka-streams-peer.lock"
[[ -f "$built/build.complete" ]] || { echo "build.sh: the build did not complete" >&2; exit 1; }
echo "$built"
