// The data layer in one include: readers, BERT normalisation + WordPiece (encode and train), token shards,
// the MLM batch source and the prepare pipeline.
#pragma once

#include "cram/data/mlm_source.hpp"
#include "cram/data/prepare.hpp"
#include "cram/data/readers.hpp"
#include "cram/data/shards.hpp"
#include "cram/data/unicode.hpp"
#include "cram/data/wordpiece.hpp"
#include "cram/data/wordpiece_trainer.hpp"
