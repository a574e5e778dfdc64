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


def _starting_table():
  """{pipeline: (observations, actions)} from README's 'Which pipeline to start from'."""
  readme = (REPO / 'README.md').read_text()
  section = readme.split('## Which pipeline to start from', 1)[1].split('\n## ', 1)[0]
  rows = {}
  for line in section.splitlines():
    cells = [cell.strip() for cell in line.strip('|').split('|')]
    if len(cells) == 4 and cells[2].startswith('`pipelines/'):
      observations, actions = cells[1].rsplit(', ', 1)
      rows[cells[2].strip('`')] = (observations, actions)
  return rows


def test_readme_says_which_pipeline_to_start_from():
  import gin
  from dreamkit import config
  from dreamkit.networks.encoders import no_keys_error
  rows = _starting_table()
  assert len(rows) == 5, rows
  for pipeline, (observations, actions) in rows.items():
    gin.clear_config()
    config.load([str(REPO / pipeline)])
    # The row's observations are what the pipeline's encoder reads.
    image = observations.endswith('image')
    assert gin.query_parameter('%CNN_KEYS') == ('image' if image else '$^'), pipeline
    assert gin.query_parameter('%MLP_KEYS') == ('$^' if image else '.*'), pipeline
    assert actions in ('discrete', 'continuous'), (pipeline, actions)
  gin.clear_config()
  # The error that names a suitable pipeline names it as the table does.
  for shapes, wanted in (({'vector': (4,)}, 'vector'), ({'image': (64, 64, 3)}, 'image')):
    message = str(no_keys_error('DreamerDecoder', shapes, 'x', 'y'))
    for kind in ('discrete', 'continuous'):
      named = re.search(rf'(pipelines/\w+\.gin) \({kind}', message).group(1)
      observations, actions = rows[named]
      assert actions == kind, (named, rows[named])
      assert ('image' in observations) == (wanted == 'image'), (named, rows[named])
