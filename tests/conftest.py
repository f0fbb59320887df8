import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

# Files that take minutes (mostly waiting on the scheduler or on end-to-end runs) go first, so that with
# `pytest -n 2 --dist loadfile` they overlap the many short files instead of running alone at the end.
LONG_FILES = ("test_slurm.py", "test_lineage.py", "test_reruns.py", "test_teachers_workflow.py",
              "test_plan_workflow.py", "test_student_cli.py", "test_workflow.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONG_FILES)))  # stable: order within a file kept
