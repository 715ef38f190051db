// The data layer in one include, every header of cram/data/ (an umbrella header is named after the folder it
// gathers and sits next to it): readers, BERT normalisation + WordPiece (encode and train), token shards, the
// MLM batch source and the prepare pipeline. Needs cram::data (utf8proc, zstd, nlohmann_json).
#pragma once

#include "cram/data/mlm_source.hpp"
#include "cram/data/prepare.hpp"
#include "cram/data/readers.hpp"
#include "cram/data/shards.hpp"
#include "cram/data/unicode.hpp"
#include "cram/data/wordpiece.hpp"
#include "cram/data/wordpiece_trainer.hpp"
