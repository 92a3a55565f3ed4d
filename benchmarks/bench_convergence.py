"""gencore convergence benchmark: prints the markdown tables (see gencore.bench.convergence)."""

from gencore.bench import main_for

if __name__ == "__main__":
    main_for("convergence")
