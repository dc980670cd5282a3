#!/bin/sh
# Regenerates the fixtures of this folder: each <name>.txtpb (text format of
# vac.mvds.Payload, mvds.proto) becomes <name>.bin with protoc, and ids.txt
# lists the id of every message in them, computed by ids.py (Python's
# hashlib and a wire parser of its own, independent of the Go code under
# test). Run from anywhere: `go generate ./plugins/mvds` runs it. Needs
# protoc and python3; the tests need neither.
set -eu
cd "$(dirname "$0")"
for f in *.txtpb; do
	protoc --proto_path=. --encode=vac.mvds.Payload mvds.proto <"$f" >"${f%.txtpb}.bin"
done
python3 ids.py *.bin >ids.txt
