// Named weights handed to a network at construction. Every lookup states the
// shape the graph expects, so a missing key or a shape mismatch names the key
// and both shapes; after binding, any key the graph never asked for (other
// than the ones declared dead, like GenerativeModels' unused proj_attn) is an
// error too, which is how a checkpoint of the wrong architecture is caught.
#pragma once
#include <map>
#include <set>
#include <string>
#include <vector>

#include "../tensor.h"

namespace bl {

class WeightStore {
 public:
  // float32 tensors; the store keeps them (and their owners) alive.
  void add(const std::string& name, const Tensor& t) { tensors_[name] = t; }
  bool has(const std::string& name) const { return tensors_.count(name) > 0; }
  size_t size() const { return tensors_.size(); }
  size_t bytes() const {
    size_t n = 0;
    for (const auto& kv : tensors_) n += kv.second.nbytes();
    return n;
  }

  Status take(const std::string& name, const std::vector<int64_t>& shape, Tensor* out);
  // Marks a key as known but unused by the forward pass (no error if absent).
  void ignore(const std::string& name) { used_.insert(name); }
  // Error naming every key the graph did not bind.
  Status check_all_used() const;

  // Listing mode: take() records every (key, shape) the graph asks for and hands out zero-filled tensors instead
  // of looking the key up. This is how tools learn a network's exact state_dict layout (random-weight bundles for
  // tests, export checks) from the one graph definition instead of a second copy of MONAI's key rules.
  void set_listing(bool on) { listing_ = on; }
  struct Request {
    std::string name;
    std::vector<int64_t> shape;
  };
  const std::vector<Request>& requests() const { return requests_; }

 private:
  std::map<std::string, Tensor> tensors_;
  std::set<std::string> used_;
  bool listing_ = false;
  std::vector<Request> requests_;
};

}  // namespace bl
