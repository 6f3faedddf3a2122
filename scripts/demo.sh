#!/bin/sh
# Installs what vmig needs, builds it and runs the demo: dirty tracking on
# a simulated kernel with a vfio-pci device and an mdev, whose report
# compares what the sources reported with what the devices wrote.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$(nproc)"
build/bin/vmig run samples/configs/demo.json --report build/demo-report.json
echo "report: build/demo-report.json"
