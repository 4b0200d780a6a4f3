// stb_image compiled from Debian's header into the image harness, with the fuzz
// build's coverage hooks and sanitizers: the executable's definitions take precedence
// over the uninstrumented libstb.so that onnas_data links, so libFuzzer can see (and
// steer) the branches inside the decoders instead of fuzzing them blind. Same header,
// same version, default configuration, as the library the tool uses.
#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>
