"""Where one training update's time goes, part by part, on this machine.

    python benchmarks/update_profile.py                         # Atari, float32
    python benchmarks/update_profile.py --precision bf16 --repeats 5
    python benchmarks/update_profile.py --pipeline pipelines/cartpole_dreamerv2.gin \
        --task gym:CartPole-v1

Builds the pipeline's agent (Atari: the reference sizes) and times, each as its own
traced function on the same fake batch (median of `--repeats` calls after one that
traces), the pieces of an update that can be run alone:

    encoder           forward of the encoder on the [B, T] batch
    observe           the RSSM's posterior loop over T steps (forward)
    heads             decoder, reward and discount heads on the posterior features
    model loss        the whole world-model loss, forward (the KL and likelihoods are
                      the rest after the three above)
    model backward    gradient of that loss (forward + backward minus forward)
    model optimizer   the world model's optimizer step (train minus forward + backward)
    imagination       H steps of the prior under the actor, from B * T starts, with
                      the rewards and discounts of the imagined states
    actor-critic rest targets, actor and critic losses, their gradients and optimizer
                      steps (the actor-critic's train minus imagination)
    host              the full update called as the runner calls it, minus the sum
                      of the model's train and the actor-critic's train: batch
                      conversion, the call into the traced function, metrics out

Rows are derived by subtraction where a piece cannot run alone, so small negative
rests are timing noise. Prints a Markdown table with each piece's share.
"""

import argparse
import time

import numpy as np
import tensorflow as tf

from dreamkit import envs
from dreamkit.behavior.imagination import imagine
from small_speed import build_agent, fake_batch


def median_seconds(function, repeats):
  function()  # Traces.
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    tf.nest.map_structure(
        lambda x: x.numpy() if hasattr(x, 'numpy') else x, function())
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def profile(agent, batch, repeats):
  wm, ac = agent.world_model, agent.actor_critic
  agent.create_variables()
  dyn = wm.dynamics
  size = int(batch['is_first'].shape[0])
  state = dyn.initial(size)
  data = wm.preprocess(batch)
  compiled = lambda f: tf.function(f, autograph=False)

  embed = compiled(lambda: wm.encoder(data))
  observe = compiled(
      lambda: dyn.observe(embed(), data['action'], data['is_first'], state)[0])
  post = observe()
  feat = dyn.get_feat(post)

  def heads():
    outs = []
    for head in wm.heads.values():
      out = head(feat)
      for dist in (out.values() if isinstance(out, dict) else [out]):
        outs.append(tf.reduce_mean(tf.cast(dist.mode(), tf.float32)))
    return tf.add_n(outs)

  def loss_only():
    return wm.compute_loss(data, state)[0]

  variables = [v for m in wm.modules() for v in m.trainable_variables]

  def loss_and_grads():
    with tf.GradientTape() as tape:
      loss = wm.compute_loss(data, state)[0]
    return tape.gradient(loss, variables)

  def imagination():
    traj = imagine(wm, ac.actor, post, batch['is_terminal'], ac.imag_horizon, ac.discount)
    return agent.imagined_reward(traj), traj['discount']

  parts = {
      'encoder': compiled(lambda: embed()),
      'observe': observe,
      'heads': compiled(heads),
      'model loss': compiled(loss_only),
      'model loss + backward': compiled(loss_and_grads),
      'model train': lambda: wm.train(batch, state)[2],
      'imagination': compiled(imagination),
      'actor-critic train': compiled(
          lambda: ac.train(wm, post, batch['is_terminal'], agent.imagined_reward,
                           agent.replay_targets(batch))),
      'update': lambda: agent.train(batch, state)[1],
  }
  seconds = {name: median_seconds(function, repeats) for name, function in parts.items()}
  s = seconds
  rows = [
      ('encoder', s['encoder']),
      ('observe (RSSM loop, forward)', s['observe'] - s['encoder']),
      ('heads (decoder, reward, discount), forward', s['heads']),
      ('KL and likelihoods (rest of the loss)',
       s['model loss'] - s['observe'] - s['heads']),
      ('model backward', s['model loss + backward'] - s['model loss']),
      ('model optimizer', s['model train'] - s['model loss + backward']),
      ('imagination (forward)', s['imagination']),
      ('actor-critic rest (targets, losses, backward, optimizers)',
       s['actor-critic train'] - s['imagination']),
      ('host (conversion, call, metrics)',
       s['update'] - s['model train'] - s['actor-critic train']),
  ]
  return rows, s['update']


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--pipeline', default='pipelines/atari_dreamerv2.gin')
  parser.add_argument('--task', default='atari:pong')
  parser.add_argument('--precision', default='32')
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('-b', dest='bindings', action='append', default=[],
                      help='Extra gin binding (repeatable).')
  args = parser.parse_args()
  precision = int(args.precision) if args.precision.isdigit() else args.precision
  env = envs.make(args.task)
  obs_space, act_space = env.obs_space, env.act_space
  env.close()
  agent, _, policy = build_agent(
      [args.pipeline], [f'Pipeline.precision = {precision!r}'] + args.bindings,
      obs_space, act_space)
  rows, total = profile(agent, fake_batch(obs_space, act_space), args.repeats)
  print(f'{args.pipeline}, precision {precision} ({policy}); one update: {total:.3f} s')
  print('| part | seconds | share |')
  print('| --- | --- | --- |')
  for name, seconds in rows:
    print(f'| {name} | {seconds:.3f} | {seconds / total:.0%} |')
  print(f'| sum of the parts | {sum(s for _, s in rows):.3f} | |')


if __name__ == '__main__':
  main()
