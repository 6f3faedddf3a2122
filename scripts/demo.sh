#!/bin/sh
# Installs what vmig needs, builds it and runs the demo: a live migration
# in one process, on a simulated kernel whose vfio-pci device and mdev
# keep writing during the pre-copy; its report must say "completed", the
# memories match and no written page was missed.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$(nproc)"
build/bin/vmig run samples/configs/demo.json --report build/demo-report.json
echo "report: build/demo-report.json"
