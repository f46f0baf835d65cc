"""The step under a tf.distribute strategy: the input of every replica and one compiled call."""
import tensorflow as tf

from tf_convgan.training.strategy import per_replica_batch_size


def distribute_pipeline(strategy, make_pipeline):
    """Distributes a pipeline of global batches: replica r gets rows [r b, (r + 1) b) of every
    global batch (b = the per-replica batch), with static shapes, on any strategy.

    Every input pipeline (one per worker) builds the whole stream and keeps the rows of its own
    replicas, so R replicas on any number of workers see exactly the global batch of one device.
    (tf.data's auto-sharding would lose the static batch size, and its DATA policy would give
    workers interleaved rather than contiguous rows.)"""

    def dataset_fn(context):
        pipeline = make_pipeline()
        real_spec = pipeline.element_spec[0]
        rows = context.get_per_replica_batch_size(real_spec.shape[0])
        local = context.num_replicas_in_sync // context.num_input_pipelines
        first = context.input_pipeline_id * local * rows

        def split(real, labels):
            def mine(x):
                x = x[first:first + local * rows]
                return tf.reshape(x, [local, rows] + x.shape.as_list()[1:])
            return tf.data.Dataset.from_tensor_slices((mine(real), mine(labels)))

        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.OFF)
        return pipeline.flat_map(split).with_options(options)

    return strategy.distribute_datasets_from_function(dataset_fn)


def make_step_fn(gan, strategy, jit_compile, element_spec, steps_per_execution=1):
    """The distributed step: `steps_per_execution` training steps per call (one host round trip
    for several steps on TPU); `element_spec` is the global batch's (real, labels) spec. Returns
    the logs of the last step."""
    rows = per_replica_batch_size(element_spec[0].shape[0], strategy)
    shapes = [[rows] + spec.shape.as_list()[1:] for spec in element_spec]

    def replica_step(data):
        # Multi-worker input loses the static batch size (it could end with a partial batch);
        # ours never does (drop_remainder), and the step needs static shapes.
        return compiled_step(tuple(tf.ensure_shape(x, shape) for x, shape in zip(data, shapes)))

    # A nested tf.function only for XLA: MultiWorkerMirroredStrategy cannot all-reduce inside a
    # nested function (merge_call), and without XLA the outer tf.function is all that is needed.
    compiled_step = (tf.function(gan.train_step, jit_compile=True) if jit_compile
                     else gan.train_step)
    # The step has no tensor-dependent Python control flow (its branches are tf.cond), so
    # AutoGraph would convert the library's and Keras' code only to trace the same ops: most of
    # the tracing time of a small model. Only the loop below is converted.
    replica_step = tf.autograph.experimental.do_not_convert(replica_step)

    @tf.function
    def distributed_step(iterator):
        logs = strategy.run(replica_step, args=(next(iterator),))
        for _ in tf.range(steps_per_execution - 1):
            logs = strategy.run(replica_step, args=(next(iterator),))
        # Logs are all-reduced inside the step: every replica holds the same value.
        return {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
                for k, v in logs.items()}

    return distributed_step
