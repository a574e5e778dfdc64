"""Which CartPole failures does a trained world model see coming? (issue 14 diagnosis)

    python benchmarks/cartpole_terminals.py LOGDIR

Restores the latest checkpoint of a CartPole run (its config.gin), runs
`dreamkit.diagnostics.episode_report` on every terminated episode in its replay, and
prints, per kind of failure (`x`: the cart left the track, |x| > 2.4; `theta`: the
pole fell, |theta| > 12 degrees) and per episode length (early episodes of at most
100 steps, late ones longer), the termination probability the model gives the real
terminal step (`p_end`), the step before it (`p_prev`), and the mean over the other
steps (`p_other`). A model that knows how episodes end gives p_end near 1. The run's
files are only read: the update that builds the agent's variables draws its batch
from a copy of the last episodes in a temporary folder.
"""

import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np

from dreamkit import cli

X_LIMIT, THETA_LIMIT = 2.4, 12 * 2 * np.pi / 360  # gymnasium's CartPole-v1 bounds


def load(path):
  with h5py.File(path, 'r') as handle:
    return {key: handle[key][()] for key in handle.keys()}


def main(logdir):
  loaded = cli._load([str(logdir / 'config.gin')], (), (), None, None)  # pylint: disable=protected-access
  import pandas as pd  # pylint: disable=import-outside-toplevel
  from dreamkit import agent as agent_lib  # pylint: disable=import-outside-toplevel
  from dreamkit import diagnostics  # pylint: disable=import-outside-toplevel
  from dreamkit import replay as replays_lib  # pylint: disable=import-outside-toplevel
  from dreamkit.runner import checkpoint as checkpoint_lib  # pylint: disable=import-outside-toplevel
  from dreamkit.runner import pipeline, train  # pylint: disable=import-outside-toplevel
  from dreamkit.runner.rows import Counters  # pylint: disable=import-outside-toplevel

  s = pipeline.Pipeline(loaded=loaded)
  counters = Counters.create()
  with train._make_envs(s, 1, s.seed) as envs:  # pylint: disable=protected-access
    agent = agent_lib.build(envs.obs_space, envs.act_space, counters.step, s.world_model,
                            s.actor_critic, s.explorer, s.agent)
  files = sorted((logdir / 'replay').glob('*.h5'))
  with tempfile.TemporaryDirectory() as folder:
    copy = replays_lib.registry.build(s.replay, 'Pipeline.replay', Path(folder))
    for path in files[-40:]:
      copy.add_episode(load(path))
    agent.train(next(iter(copy.dataset(s.batch_size, s.batch_length))), None)
    copy.close()
  checkpoint = checkpoint_lib.Checkpoint(
      logdir / 'checkpoints', agent, checkpoint_lib.numpy_rng(0), **counters.as_dict())
  if not checkpoint.restore():
    raise SystemExit(f'{logdir} has no checkpoint')
  print(f'{checkpoint.restored} (step {int(counters.step):,}), {len(files)} episodes')
  rows = []
  for path in files:
    episode = load(path)
    if not episode['is_terminal'][-1] or len(episode['reward']) < 2:
      continue
    report = diagnostics.episode_report(
        agent.world_model, agent.actor_critic, episode, open_loop=1)
    x, _, theta, _ = episode['vector'][-1]
    rows.append({
        'length': len(episode['reward']),
        'failure': 'x' if abs(x) > X_LIMIT else 'theta' if abs(theta) > THETA_LIMIT else '?',
        'p_end': report['term_prob'][-1], 'p_prev': report['term_prob'][-2],
        'p_other': np.mean(report['term_prob'][:-1])})
  table = pd.DataFrame(rows)
  table['episodes'] = np.where(table['length'] > 100, 'late (>100 steps)', 'early')
  print(table.groupby(['episodes', 'failure']).agg(
      n=('length', 'size'), p_end=('p_end', 'mean'), p_end_median=('p_end', 'median'),
      p_prev=('p_prev', 'mean'), p_other=('p_other', 'mean')).round(3).to_string())


if __name__ == '__main__':
  main(Path(sys.argv[1]))
