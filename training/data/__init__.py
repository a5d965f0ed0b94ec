"""Dataset conversion behind dataset_tool.py (the reader is training/dataset.py):

- `sources`: image sources (folders, archives, npy/hdf5, lmdb, cifar, mnist, tfrecords), each a
  count plus a stream of items;
- `convert`: validation, crop/resize and the conversion driver (`ConvertOptions`, `convert`);
- `records`: the on-disk TFRecord format (names, encoding, reading back), shared with the reader;
- `writer`: `DatasetWriter`, multi-resolution records written atomically;
- `catalog`: recipes for the paper's datasets (download, extract, convert);
- `inspection`: the read-side commands (info, display, extract, compare);
- `scenes`: the procedural multi-object scenes (the embedded default dataset);
- `layouts`: scene layouts (segment maps + categories): majority down-sampling, label PNGs."""
