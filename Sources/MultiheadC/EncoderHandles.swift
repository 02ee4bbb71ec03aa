import CMultiheadABI
import Foundation
import Multihead

/// What an `mh_encoder` handle owns: one of the three encoder modules and C copies of its
/// parameter names.
final class EncoderHandle: ParameterHandle {
    enum Kind { case layer, encoder, layerNorm }

    let module: StateDictModule
    let kind: Kind

    init(_ module: StateDictModule, kind: Kind) {
        self.module = module
        self.kind = kind
        super.init(module)
    }

    var kindName: String {
        switch kind {
        case .layer: return "a TransformerEncoderLayer"
        case .encoder: return "a TransformerEncoder"
        case .layerNorm: return "a LayerNorm"
        }
    }
}

/// The model behind an `mh_bert` handle.
final class BertHandle {
    let model: BertModel
    init(_ model: BertModel) { self.model = model }
}
