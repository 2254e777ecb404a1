"""The README's set-up is what CI runs."""

import re

from .conftest import REPO


def _readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    return [line.strip() for block in blocks[:3] for line in block.splitlines() if line.strip()]


def test_ci_runs_the_readme_install_and_test_commands_verbatim():
    install, main_job, test = _readme_commands()
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert install.startswith("pip install") and install in ci
    assert test.startswith("pytest") and test in ci
    assert ci.index(install) < ci.index(test)
    assert main_job.startswith("mtl fit --config conf/")
    assert (REPO / main_job.split("--config ")[1].split()[0]).is_file()
