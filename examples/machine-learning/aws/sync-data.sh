#!/bin/sh
# sync-data pull|push DIR
# With S3_URI set (e.g. s3://my-bucket/machine-learning/), copies DIR from or to
# that prefix, so tasks on different nodes see each other's files. Without it
# DIR is on a shared volume (ReadWriteMany PVC) and there is nothing to do.
set -eu
if [ $# -ne 2 ] || { [ "$1" != pull ] && [ "$1" != push ]; }; then
    echo "usage: sync-data pull|push DIR" >&2
    exit 2
fi
direction=$1
dir=$2
mkdir -p "$dir"
if [ -z "${S3_URI:-}" ]; then
    echo "sync-data: $dir is on a shared volume; nothing to $direction"
    exit 0
fi
if [ "$direction" = pull ]; then
    aws s3 sync "$S3_URI" "$dir"
else
    aws s3 sync "$dir" "$S3_URI"
fi
