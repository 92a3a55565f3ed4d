"""Model-zoo benchmark: trains every family at full quality and reports metric and training time.

    flock /tmp/gencore-bench.lock PYTHONPATH=python python benchmarks/bench_zoo.py [--quick] [--json out.json]
"""

from gencore.bench import main_for

if __name__ == "__main__":
    main_for("zoo")
