"""Readers of raw inputs: each turns files or columns of one kind (text, audio, images and video
frames, a frozen pretrained encoder's features, the MNIST and FSDD files) into arrays of the
data contract. They know nothing of datasets or splits."""
