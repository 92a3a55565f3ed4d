"""gencore pipelines benchmark: prints the markdown tables (see gencore.bench.pipelines)."""

from gencore.bench import main_for

if __name__ == "__main__":
    main_for("pipelines")
