"""Runs that describe themselves: the record a logdir holds, `dreamkit run LOGDIR`,
and the one-line error for a checkpoint of another configuration."""

import json
import shutil

import trained_run as helper


def test_the_record_names_plugin_files_and_entry_points(trained_run):
  logdir = trained_run.logdir
  record = json.loads((logdir / 'plugins.json').read_text())
  assert record['files'] == [{'path': str(trained_run.plugin_path.resolve()),
                              'copy': 'plugins/small_impala.py'}]
  assert (logdir / 'plugins' / 'small_impala.py').read_text().startswith(
      '"""An example dreamkit plugin')
  assert {'name': 'trained_sinks', 'value': 'trained_ep.sinks',
          'distribution': 'trained-ep', 'version': '1.0'} in record['entry_points']
  assert '@encoders.SmallImpalaEncoder' in (logdir / 'config.gin').read_text()
  # The agent plays in the videos written during training, beside the predictions.
  videos = sorted(path.name for path in (logdir / 'videos').iterdir())
  assert f'policy_image_{helper.STEPS:09d}.gif' in videos
  assert f'openl_image_{helper.STEPS:09d}.gif' in videos


def test_resume_by_logdir_then_a_mismatch_is_one_line(trained_run, tmp_path):
  logdir = tmp_path / 'copy'
  shutil.copytree(trained_run.logdir, logdir)
  result = helper.dreamkit('run', logdir, '--steps', helper.STEPS + 10, env=trained_run.env)
  assert result.returncode == 0, result.stderr[-3000:]
  assert f'at step {helper.STEPS:,}' in result.stdout
  assert f'Finished at step {helper.STEPS + 10}' in result.stdout
  record = json.loads((logdir / 'plugins.json').read_text())
  # Resumed from its copy, the record still names where the plugin came from.
  assert record['files'][0]['path'] == str(trained_run.plugin_path.resolve())

  config = (logdir / 'config.gin').read_bytes()
  checkpoints = {path.name: path.read_bytes() for path in (logdir / 'checkpoints').iterdir()}
  result = helper.dreamkit('run', logdir, '-b', 'heads.MLPHead.units = 16',
                           env=trained_run.env)
  assert result.returncode == 2
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1, result.stderr  # No TensorFlow warning after it.
  assert 'different configuration' in lines[0]
  assert 'agent/actor_critic/actor: 000_kernel' in lines[0] and 'vs (' in lines[0]
  assert (logdir / 'config.gin').read_bytes() == config
  assert {path.name: path.read_bytes()
          for path in (logdir / 'checkpoints').iterdir()} == checkpoints


def test_a_folder_that_is_not_a_run(tmp_path):
  (tmp_path / 'empty').mkdir()
  result = helper.dreamkit('run', tmp_path / 'empty')
  assert result.returncode == 2
  assert result.stderr.strip().splitlines() == [
      f"Error: {tmp_path / 'empty'} has no config.gin: it is not the logdir of a "
      'dreamkit run (pass the folder that holds config.gin, checkpoints/ and '
      'metrics.jsonl).']
  result = helper.dreamkit('run', tmp_path / 'empty', helper.REPO / 'pipelines' / 'debug.gin')
  assert result.returncode == 2 and 'by itself' in result.stderr
