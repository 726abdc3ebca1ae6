/* conv_geom.h — the geometry of a convolution, derived once from its shapes (conv2d_geom) and
 * read by every convolution kernel: the general ones (conv2d.h) and the depthwise ones
 * (depthwise.h). Legend: N batch, H W input height/width, C input channels, OC output channels,
 * KH KW kernel, OH OW output height/width, G groups. All tensors channels-last. */
#ifndef DQ_CONV_GEOM_H
#define DQ_CONV_GEOM_H

typedef struct ConvGeom {
    int N, H, W, C;    // input (N, H, W, C)
    int OC, KH, KW;    // weight (KH, KW, C/G, OC)
    int OH, OW;        // output (N, OH, OW, OC)
    int stride, pad, groups;
    int ICg, OCg;      // channels per group, in and out
    int Kc;            // KH·KW·ICg: columns of the im2col matrix
} ConvGeom;

#endif
