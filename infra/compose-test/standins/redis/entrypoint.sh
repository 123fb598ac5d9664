#!/bin/sh
# Like the official image: a redis-server without a config file is reachable from other
# containers (protected mode would refuse every non-loopback client).
set -eu
if [ "$1" = redis-server ]; then
  shift
  set -- redis-server --protected-mode no "$@"
fi
exec setpriv --reuid=redis --regid=redis --init-groups "$@"
