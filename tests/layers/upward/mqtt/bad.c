/* A bare name is the top layer's: upward from mqtt/. */
#include "instance.h"
