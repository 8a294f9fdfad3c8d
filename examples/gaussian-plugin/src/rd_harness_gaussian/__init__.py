"""An example rd-harness plugin: the `gaussian` method and the `manifest` data set format."""
