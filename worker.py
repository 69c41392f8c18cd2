"""The job worker's entry point: python worker.py (the Procfile's worker)."""
from saas.worker import main

if __name__ == "__main__":
    main()
