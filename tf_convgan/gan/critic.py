"""D as the penalties and consistency terms see it: images -> float32 logits [B]."""
import tensorflow as tf


class Critic:
    """The discriminator with its labels and `training` flag bound.

    `logits_with_input_gradients(x)` also returns a function that gives grad_x sum D(x) from the
    same forward pass (R1 then costs no second forward and backward pass of D, as in
    GAN_stability's code); the step hands it to the penalty as `real_gradients`. Under loss
    scaling (mixed_float16) the gradient is taken of loss_scale * D, so that it does not
    underflow in float16, and divided by the scale again before any penalty squares it."""

    def __init__(self, discriminator, labels, *, training, loss_scale=None):
        self.discriminator = discriminator
        self.labels = labels
        self.training = training
        self.loss_scale = loss_scale

    def __call__(self, images):
        return tf.cast(self.discriminator(images, self.labels, training=self.training),
                       tf.float32)

    def logits_with_input_gradients(self, x):
        """(D(x), a function returning grad_x sum D(x) of this forward pass; it is evaluated
        once, when first called, and only then costs a backward pass)."""
        tape = tf.GradientTape()
        with tape:
            tape.watch(x)
            logits = self(x)
            total = tf.reduce_sum(logits)
            if self.loss_scale is not None:
                total *= tf.cast(self.loss_scale, tf.float32)
        cache = []

        def input_gradients():
            if not cache:  # a non-persistent tape answers once
                gradients = tape.gradient(total, x)
                if self.loss_scale is not None:
                    gradients = (tf.cast(gradients, tf.float32)
                                 / tf.cast(self.loss_scale, tf.float32))
                cache.append(gradients)
            return cache[0]

        return logits, input_gradients
