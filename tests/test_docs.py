"""Docs match the code: components page, README commands, CI command, pipelines."""

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_components_page_matches_the_registries():
  # A fresh process: other tests register plugin components in this one.
  result = subprocess.run(
      [sys.executable, '-m', 'dreamkit.cli', 'components', '--markdown'],
      capture_output=True, text=True, cwd=REPO, timeout=240)
  assert result.returncode == 0, result.stderr
  assert (REPO / 'docs' / 'components.md').read_text() == result.stdout, (
      'docs/components.md is stale: dreamkit components --markdown > docs/components.md')


def readme_commands():
  text = (REPO / 'README.md').read_text()
  block = re.search(r'## Set-up: two commands.*?```bash\n(.*?)```', text, re.S).group(1)
  return [line for line in block.splitlines() if line and not line.startswith('#')]


def test_readme_has_two_setup_commands_and_ci_runs_the_test_one():
  install_and_run, install_and_test = readme_commands()
  assert install_and_run == 'pip install -e . && dreamkit run pipelines/atari_dreamerv2.gin'
  assert 'pytest' in install_and_test
  ci = [line for line in (REPO / '.ci' / 'run').read_text().splitlines()
        if line and not line.startswith(('#', 'set ', 'cd ', 'export '))]
  assert ci == [install_and_test]


def test_readme_names_every_pipeline_and_docs_exist():
  readme = (REPO / 'README.md').read_text()
  for pipeline in (REPO / 'pipelines').glob('*.gin'):
    assert pipeline.name in readme, pipeline.name
  for doc in re.findall(r'docs/[\w.]+\.md', readme):
    assert (REPO / doc).exists(), doc
