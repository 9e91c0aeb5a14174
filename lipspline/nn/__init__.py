"""The networks: spline and other activations, the layers (1-Lipschitz ones included), the
SplineNetwork, the trained model as it is served (its outputs and labels) and its stored parts."""
